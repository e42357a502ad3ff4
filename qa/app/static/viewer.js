// On the viewer: bring the highlighted span into view when the viewer appears and whenever it changes:
// in the text, and on a PDF's page image (its first highlighted box).
const reveal = () => requestAnimationFrame(() => {
  const focus = element.querySelector('#qa-focus .qa-hit') || element.querySelector('#qa-focus');
  const box = element.querySelector('.qa-doc-text');
  if (focus && box) {
    if (box.scrollHeight > box.clientHeight) box.scrollTop = Math.max(0, focus.offsetTop - box.clientHeight / 3);
    else focus.scrollIntoView({block: 'center'});
  }
  const page = element.querySelector('.qa-page');
  const mark = element.querySelector('.qa-page-focus') || element.querySelector('.qa-page-hit');
  if (page && mark) {
    if (page.scrollHeight > page.clientHeight) page.scrollTop = Math.max(0, mark.offsetTop - page.clientHeight / 3);
    if (page.scrollWidth > page.clientWidth) page.scrollLeft = Math.max(0, mark.offsetLeft - 16);
  }
});
// A click on the page image zooms it to twice the panel's width (and back), keeping the highlight in view.
if (!element.__qaZoom) {
  element.__qaZoom = true;
  element.addEventListener('click', (event) => {
    const sheet = event.target && event.target.closest ? event.target.closest('.qa-page-sheet') : null;
    if (!sheet) return;
    sheet.parentElement.classList.toggle('qa-zoom');
    reveal();
  });
}
reveal();
watch('value', reveal);
