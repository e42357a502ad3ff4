"""The Documents tab and the ``/upload`` and ``/delete`` endpoints: Gradio wiring around
:class:`qa.app.documents.DocumentLibrary`, and the list's HTML (pure functions).

Example:
    >>> from gradio_client import Client, handle_file
    >>> client = Client("http://127.0.0.1:7860/")
    >>> rows = client.predict(handle_file("minutes.docx"), api_name="/upload")
    >>> client.predict("minutes", api_name="/delete")  # an upload; a user's file needs confirm=True
"""

import html
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence
from urllib.parse import quote, unquote

from qa.app.demo import is_demo_copy
from qa.app.documents import DocumentLibrary, NeedsConfirmation
from qa.app.limits import shown
from qa.app.uploads import UPLOAD_SUFFIXES, read_upload
from qa.errors import InvalidInput, UserError

# No `from __future__ import annotations`: Gradio reads the event handlers' annotations (gr.EventData) as
# real objects. gradio itself loads when the tab is built, never at import.
if TYPE_CHECKING:
    import gradio as gr

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
FAILED = "The server failed to change the documents; see its log."


def _when(stamp: str) -> str:
    """``2026-12-01T14:03:22+0000`` as "1 Dec 2026, 14:03"; anything else as it is."""
    try:
        t = time.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
    except (TypeError, ValueError):
        return stamp or "unknown"
    return f"{t.tm_mday} {time.strftime('%b %Y, %H:%M', t)}"


def render_library(rows: list[dict], pending: tuple[str, str] | None = None, docs_dir: str = "",
                   skipped: Sequence[dict] = ()) -> str:
    """The documents list: one card per document, its delete link, and for ``pending`` (id, message)
    the question whether to go on; then the files of the folder that were not indexed (``skipped``:
    file and reason each)."""
    cards = []
    for row in rows:
        ref = quote(row["id"], safe="")
        origin = "uploaded here" if row["uploaded"] else "in the folder"
        passages = f"{row['passages']:,} passage{'' if row['passages'] == 1 else 's'}"
        meta = " · ".join([html.escape(row["file"]), row["size"], passages,
                           f"indexed {html.escape(_when(row['indexed_at']))}", origin])
        confirm = ""
        if pending is not None and pending[0] == row["id"]:
            confirm = (f'<div class="qa-lib-confirm" role="alert"><p>{html.escape(pending[1])}</p>'
                       f'<a class="qa-lib-danger" href="#qa-delete-confirm:{ref}">Move it to the trash</a>'
                       f'<a class="qa-lib-cancel" href="#qa-delete-cancel:">Keep it</a></div>')
        cards.append(
            f'<li class="qa-lib-doc" data-doc="{html.escape(row["id"], quote=True)}"><div class="qa-lib-main">'
            f'<div class="qa-lib-title">{html.escape(row["title"])}</div><div class="qa-lib-meta">{meta}</div></div>'
            f'<a class="qa-lib-delete" href="#qa-delete:{ref}" title="Delete {html.escape(row["file"], quote=True)}"'
            f' aria-label="Delete {html.escape(row["title"], quote=True)}">Delete</a>{confirm}</li>')
    where = f' in <code>{html.escape(docs_dir)}</code>' if docs_dir else ""
    return (f'<div class="qa-library"><p class="qa-lib-count">{len(rows):,} document{"s" if len(rows) != 1 else ""}'
            f'{where}</p><ul class="qa-lib-list">{"".join(cards)}</ul>{_render_skipped(skipped)}</div>')


def _render_skipped(skipped: Sequence[dict]) -> str:
    """The files that indexing skipped, each with its reason, and what to do about them."""
    if not skipped:
        return ""
    items = "".join(f'<li><span class="qa-lib-file">{html.escape(row["file"])}</span>: '
                    f'{html.escape(row["reason"])}</li>' for row in skipped)
    n = len(skipped)
    return (f'<div class="qa-lib-skipped" role="note"><p class="qa-lib-count">{n:,} file{"s" if n != 1 else ""} in '
            f'the folder {"is" if n == 1 else "are"} not indexed:</p><ul>{items}</ul><p class="qa-lib-help">Replace '
            "or fix them in the folder, then re-scan it; or delete them there.</p></div>")


def parse_delete(ref: object) -> tuple[str, str] | None:
    """``("ask" | "confirm" | "cancel", doc id)`` from a list link's fragment; ``None`` for anything else."""
    action, _, doc_id = str(ref).removeprefix("#").partition(":")
    kinds = {"qa-delete": "ask", "qa-delete-confirm": "confirm", "qa-delete-cancel": "cancel"}
    return (kinds[action], unquote(doc_id)) if action in kinds else None


def parse_confirm(value: object) -> bool:
    """``/delete``'s ``confirm``: true only for ``True`` or the text ``"true"`` (any case); false for
    ``False``, ``None`` (not given) or ``"false"``.

    Raises:
        InvalidInput: anything else ("yes", 1, "0"): a request that may mean either is refused, not guessed.
    """
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"confirm is true or false, got {shown(str(value), 20)}: pass confirm=True to move the "
                       "user's own file to the trash.")


def discard_upload(path: str | Path, folder: Path) -> None:
    """Delete the copy Gradio saved of an uploaded file, once handled: only inside Gradio's upload
    ``folder``, the file and its own folder (named by the content's hash) when that is left empty."""
    folder = folder.resolve()
    file = Path(path).resolve()
    if folder not in file.parents:
        logger.info("not deleting %s: outside Gradio's upload folder %s", file, folder)
        return
    file.unlink(missing_ok=True)
    if file.parent != folder:
        try:
            file.parent.rmdir()  # Gradio's folder for this content (named by its hash), when now empty
        except OSError:
            pass


def status_html(lines: list[tuple[bool, str]]) -> str:
    """What the last change did: one line each, refusals marked."""
    items = "".join(f'<li class="{"qa-status-ok" if ok else "qa-status-error"}">{html.escape(text)}</li>'
                    for ok, text in lines)
    return f'<ul class="qa-status" role="status">{items}</ul>' if lines else ""


def choices(library: DocumentLibrary) -> list[tuple[str, str]]:
    """(title, id) of every document, by title: the filter's and the picker's choices."""
    return [(row["title"], row["id"]) for row in library.rows()]


def documents_tab(library: DocumentLibrary, picker: "gr.Dropdown", doc_filter: "gr.Dropdown",
                  private: dict, app: "gr.Blocks") -> list:
    """The Documents tab's content (call inside its ``gr.Tab``) and the ``/upload`` and ``/delete`` endpoints.

    Args:
        library: the served folder.
        picker: the viewer's document picker, whose choices follow the list.
        doc_filter: the per-question filter, whose choices follow the list (a deleted choice is dropped).
        private: the event options that keep the page's own events out of the API.
        app: the Blocks being built: each page load lists the documents as they are now (the choices
            the page was built with are those at start).

    Returns:
        The events that change the documents (upload, delete, re-scan), for the page to chain what else
        shows the corpus (the header's count) after each.
    """
    import gradio as gr

    from gradio.utils import get_upload_folder

    docs_dir = library.docs_dir.resolve().name  # the folder's name: a visitor is not shown the server's paths
    uploads = Path(get_upload_folder())  # where Gradio saves what is uploaded (GRADIO_TEMP_DIR)
    saved = ("They are saved in a copy of the bundled demo documents that this server keeps aside, so the "
             "project's own files stay as they are, and only they are embedded"
             if is_demo_copy(library.docs_dir) else
             "They are saved in the served folder, so <code>qa index</code> and <code>qa ask</code> see them too, "
             "and only they are embedded")
    gr.HTML(f'<p class="qa-lib-help">Drop .txt, .md, .html, .pdf or .docx files here (up to '
            f'{library.max_upload_bytes // 2**20} MB each). {saved}; the chat keeps answering from the current '
            "index meanwhile.</p>", elem_id="qa-lib-help")
    uploader = gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES), label="Upload documents",
                       show_label=False, elem_id="qa-upload", height=120)  # the help above names it
    status = gr.HTML("", elem_id="qa-lib-status")
    listing = gr.HTML(render_library(library.rows(), None, docs_dir, library.skipped()), elem_id="qa-library",
                      js_on_load=(STATIC / "library.js").read_text(encoding="utf-8"))
    rescan = gr.Button("Re-scan the folder", size="sm", variant="secondary", elem_id="qa-rescan")

    def refreshed(lines: list[tuple[bool, str]], selected: list[str] | None, pending=None):
        listed = choices(library)
        ids = {doc_id for _, doc_id in listed}
        kept = [d for d in (selected or []) if d in ids]
        return (status_html(lines), render_library(library.rows(), pending, docs_dir, library.skipped()),
                gr.Dropdown(choices=listed, value=kept), gr.Dropdown(choices=listed))

    def on_upload(files: list[str] | None, selected: list[str] | None, progress=gr.Progress(track_tqdm=True)):
        lines = []
        for path in files or []:
            name = Path(path).name
            try:
                change = library.upload(name, read_upload(path, name, library.max_upload_bytes), progress)
                lines.append((True, change.message))
            except UserError as err:
                lines.append((False, str(err)))
            except Exception:  # noqa: BLE001 - the person hears it failed; the log has the fault
                logger.exception("upload of %s failed", name)
                lines.append((False, f"{name}: {FAILED}"))
            finally:
                discard_upload(path, uploads)
        return (*refreshed(lines, selected), None)

    def on_delete(selected: list[str] | None, data: gr.EventData, progress=gr.Progress(track_tqdm=True)):
        parsed = parse_delete((data._data or {}).get("ref", ""))
        if parsed is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        action, doc_id = parsed
        if action == "cancel":
            return refreshed([], selected)
        try:
            change = library.delete(doc_id, confirm=action == "confirm", progress=progress)
        except NeedsConfirmation as err:
            return refreshed([], selected, pending=(doc_id, str(err)))
        except UserError as err:
            return refreshed([(False, str(err))], selected)
        return refreshed([(True, change.message)], selected)

    def on_rescan(selected: list[str] | None, progress=gr.Progress(track_tqdm=True)):
        try:
            return refreshed([(True, library.rescan(progress).message)], selected)
        except UserError as err:
            return refreshed([(False, str(err))], selected)

    def on_load():
        listed = choices(library)
        listing_html = render_library(library.rows(), None, docs_dir, library.skipped())
        return listing_html, gr.Dropdown(choices=listed), gr.Dropdown(choices=listed)

    outputs = [status, listing, doc_filter, picker]
    app.load(on_load, None, [listing, doc_filter, picker], queue=False, **private)
    # No queue limit of Gradio's: the library lets one change be indexed and a few wait (each told so),
    # and refuses the rest at once, where Gradio's queue would hold any number of them.
    events = dict(concurrency_limit=None, **private)
    # One progress bar per change, where the person acted (not one over each output, the chat's filter among them).
    changes = [uploader.upload(on_upload, [uploader, doc_filter], [*outputs, uploader], show_progress_on=[uploader],
                               **events),
               listing.delete(on_delete, [doc_filter], outputs, show_progress_on=[listing], **events),
               rescan.click(on_rescan, [doc_filter], outputs, show_progress_on=[listing], **events)]

    # The endpoints scripts use: a file in, the list out; a document id in, the list out.
    api_file = gr.File(visible=False, elem_id="qa-api-file")
    api_rows = gr.JSON(visible=False)
    api_go = gr.Button(visible=False)

    def upload_api(file: str | None) -> list[dict]:
        """Add one file (.txt .md .html .pdf .docx) to the served folder and index it; returns the documents."""
        if not file:
            raise gr.Error("No file was sent: pass handle_file(path).", print_exception=False)
        name = Path(file).name
        try:
            library.upload(name, read_upload(file, name, library.max_upload_bytes))
        except UserError as err:
            raise gr.Error(str(err), print_exception=False) from None
        finally:
            discard_upload(file, uploads)
        return library.rows()

    def delete_api(doc_id: str, confirm: bool = False) -> list[dict]:
        """Delete a document by id (an upload is removed; the user's own file, moved to .qa-trash/ in the
        folder, needs confirm=True); returns the documents."""
        try:
            library.delete(doc_id, confirm=parse_confirm(confirm))
        except UserError as err:
            message = str(err) + (" Pass confirm=True." if isinstance(err, NeedsConfirmation) else "")
            raise gr.Error(message, print_exception=False) from None
        return library.rows()

    api_go.click(upload_api, [api_file], [api_rows], api_name="upload", concurrency_limit=None)
    gr.api(delete_api, api_name="delete", concurrency_limit=None)
    return changes
