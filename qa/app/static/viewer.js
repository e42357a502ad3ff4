// On the viewer: bring the highlighted span into view when the viewer appears and whenever it changes.
const reveal = () => requestAnimationFrame(() => {
  const focus = element.querySelector('#qa-focus .qa-hit') || element.querySelector('#qa-focus');
  const box = element.querySelector('.qa-doc-text');
  if (!focus || !box) return;
  if (box.scrollHeight > box.clientHeight) box.scrollTop = Math.max(0, focus.offsetTop - box.clientHeight / 3);
  else focus.scrollIntoView({block: 'center'});
});
reveal();
watch('value', reveal);
