"""Names people give things (tags, libraries), cleaned the same way everywhere."""


def name_clean(name: str, *, noun: str, max_length: int, rejected: type[ValueError]) -> str:
    """The name as stored: spaces trimmed and runs of them made one. `rejected` is raised, with
    a message fit to show, for a name that cannot be used."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise rejected(f"A {noun} needs a name.")
    if not cleaned.isprintable():
        # Control characters show as nothing, and PostgreSQL refuses NUL in text.
        raise rejected(f"A {noun} name cannot hold control characters.")
    if len(cleaned) > max_length:
        raise rejected(f"A {noun} name has at most {max_length} characters.")
    return cleaned
