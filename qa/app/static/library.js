// On the documents list: a click on a "#qa-delete...:" link (delete, confirm, cancel) fires the list's
// "delete" event with the link's fragment; the server decides, and re-renders the list.
if (!element.__qaLibrary) {
  element.__qaLibrary = true;
  element.addEventListener('click', (event) => {
    const link = event.target && event.target.closest ? event.target.closest('a[href^="#qa-delete"]') : null;
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    trigger('delete', {ref: link.getAttribute('href')});
  });
}
