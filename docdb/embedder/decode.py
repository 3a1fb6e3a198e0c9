"""Page image files to pixels: JPEGs on the GPU with nvJPEG where the model runs there, the rest
(and any JPEG nvJPEG refuses) with Pillow.

A page reaches the embedder as a JPEG (the pipeline stores pages so); Pillow decodes an A4 page
at 2048 px in ~25 ms of a CPU core, holding the GIL for part of it, which a GPU model process
needs for launching kernels. torchvision's decode_jpeg hands the file to nvJPEG instead.
"""

import logging

import torch
from PIL import Image

from docdb.embedder.protocol import image_open, image_rgb

log = logging.getLogger("docdb.embedder")

# Pillow's modes nvJPEG decodes to RGB as Pillow would; CMYK and the rest go to Pillow.
_JPEG_MODES = ("RGB", "L")


def page_decode(
    data: bytes, index: int, *, jpeg_device: torch.device | None
) -> Image.Image | torch.Tensor:
    """An image file's RGB pixels: with `jpeg_device` set, a JPEG becomes a uint8 tensor
    (channels, height, width) decoded there by torchvision, anything else a PIL image.

    Pillow reads the header either way, so the formats accepted and the size limit (413) are
    the same for both decoders.
    """
    with image_open(data, index) as image:
        if jpeg_device is None or image.format != "JPEG" or image.mode not in _JPEG_MODES:
            return image_rgb(image, index)
        try:
            return jpeg_decode(data, jpeg_device)
        except RuntimeError as exc:
            # A file Pillow reads and nvJPEG does not (progressive in some versions, odd
            # subsampling): Pillow decodes it.
            log.info(
                "input[%d]: torchvision could not decode the JPEG (%s); Pillow does", index, exc
            )
            return image_rgb(image, index)


def jpeg_decode(data: bytes, device: torch.device) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    decoded: torch.Tensor = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    return decoded
