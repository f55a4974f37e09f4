// The search box takes an option's name as the pages write it (--precision). Lunr, which Material's search runs,
// reads a "-" at the start of a word as "must not contain" and refuses "--precision"; the pages' words are indexed
// without their dashes anyway. So dashes that start a word are dropped before Material reads the box.
document.addEventListener(
  "input",
  (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.dataset.mdComponent !== "search-query") return;
    const cleaned = box.value.replace(/(^|\s)-+(?=\S)/g, "$1");
    if (cleaned !== box.value) box.value = cleaned;
  },
  true,
);
