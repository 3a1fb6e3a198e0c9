// Loaded before the page renders (not deferred): styles that only make sense with scripts running
// (fade-ins, hidden fallbacks) key on .js, and must apply from the first paint.
document.documentElement.classList.add("js");
