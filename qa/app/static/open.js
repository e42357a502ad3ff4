// On the page header, which is always mounted (a tab's content may not be): a click on any "#qa-open:..." link
// (a citation in the chat, a source card) fires the header's "open" event with the link's fragment.
const handler = (event) => {
  const link = event.target && event.target.closest ? event.target.closest('a[href^="#qa-open:"]') : null;
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  trigger('open', {ref: link.getAttribute('href')});
};
if (window.__qaOpenHandler) document.removeEventListener('click', window.__qaOpenHandler, true);
window.__qaOpenHandler = handler;
document.addEventListener('click', handler, true);
