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
// At a narrow width the viewer sits below the chat: once the clicked link's document is shown, bring the
// viewer into view (a wide page shows it beside the chat already, so nothing moves there).
const bringViewer = (tries) => {
  const viewer = document.querySelector('#qa-viewer');
  const shown = viewer && viewer.offsetParent !== null && viewer.querySelector('.qa-doc');
  if (!shown) { if (tries > 0) setTimeout(() => bringViewer(tries - 1), 100); return; }
  const box = viewer.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight * 0.6) viewer.scrollIntoView({block: 'start'});
};
const revealViewer = (event) => {
  const link = event.target && event.target.closest ? event.target.closest('a[href^="#qa-open:"]') : null;
  if (link) setTimeout(() => bringViewer(50), 150);
};
if (window.__qaRevealHandler) document.removeEventListener('click', window.__qaRevealHandler, true);
window.__qaRevealHandler = revealViewer;
document.addEventListener('click', revealViewer, true);
// A chat message's copy button copies the message as plain text: for a reply, the text Export saves for that
// turn (carried in its .qa-plain title), never the reply's HTML; for a question, the question as shown.
const copyText = async (text) => {
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) {  // no clipboard permission (e.g. plain HTTP on another host): the selection route
    const area = document.createElement('textarea');
    area.value = text;
    area.style.position = 'fixed';
    area.style.left = '-9999px';
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
};
const copyHandler = (event) => {
  const button = event.target && event.target.closest ? event.target.closest('#qa-chat button') : null;
  const label = button ? (button.getAttribute('aria-label') || button.getAttribute('title') || '') : '';
  if (!button || !/^cop(y|ied) message/i.test(label)) return;
  const buttons = button.closest('.message-buttons, [class*="message-buttons"]');
  let row = buttons ? buttons.previousElementSibling : null;
  while (row && !row.classList.contains('message-row')) row = row.previousElementSibling;
  if (!row) return;  // not a layout this script knows: Gradio's own copy runs
  event.preventDefault();
  event.stopPropagation();
  const plain = row.querySelector('.qa-plain');
  const content = row.querySelector('.message-content') || row;
  const text = plain ? plain.getAttribute('title') : content.innerText.trim();
  copyText(text).then(() => {
    button.classList.add('qa-copied');
    setTimeout(() => button.classList.remove('qa-copied'), 2000);
  });
};
if (window.__qaCopyHandler) document.removeEventListener('click', window.__qaCopyHandler, true);
window.__qaCopyHandler = copyHandler;
document.addEventListener('click', copyHandler, true);
