"""The visible text of an HTML page and its title, in one linear pass with no tree.

Block elements (p, div, h1, li, ...) break paragraphs; inline ones (b, a, em, span) stay inside their
sentence, so "We are <b>open</b> today." reads as one sentence; hidden elements (script, style,
noscript, template, head, svg) are dropped. So is the page's boilerplate, by the element's name and
place, as the HTML standard and ARIA define the page's landmarks (no guessing from class names or text):

- ``<nav>`` and ``<aside>`` (navigation and side content), wherever they are;
- ``<header>`` and ``<footer>`` of the page: those not inside an ``<article>``, ``<section>`` or
  ``<main>`` (an article's own header, holding its heading, and its byline footer stay);
- any element whose ``role`` is navigation, banner, contentinfo, complementary or search (the same
  landmarks written on a ``<div>``), and any element with the ``hidden`` attribute.

The title is still read from a dropped part (a site whose only ``<h1>`` sits in its banner is named
by it). Time is linear in the size of the page, at any depth of
nesting (nothing recursive), where BeautifulSoup takes minutes on long pages; the text and title are
BeautifulSoup's (``tests/ingest/test_html.py`` compares the two).

Example:
    >>> from qa.ingest.html_text import html_to_text
    >>> html_to_text("<h1>Hours</h1><p>We are <b>open</b> today.</p><script>x()</script>")
    ('Hours\\n\\nWe are open today.', 'Hours')
"""

from __future__ import annotations

from html.parser import HTMLParser

_HIDDEN_HTML = frozenset({"script", "style", "noscript", "template", "head", "svg"})
# Elements whose strings are never text, not even in a title (BeautifulSoup's string containers).
_UNSPOKEN_HTML = frozenset({"script", "style", "template", "rt", "rp"})
# Boilerplate: dropped wherever they are / dropped at page level only / dropped by their ARIA role.
_ASIDE_HTML = frozenset({"nav", "aside"})
_PAGE_HTML = frozenset({"header", "footer"})
_CONTENT_HTML = ("article", "section", "main")  # inside these, header and footer belong to the content
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_VOID_HTML = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem", "meta", "param",
    "source", "track", "wbr", "basefont", "bgsound", "command", "frame", "image", "isindex", "nextid", "spacer",
})
_BLOCK_HTML = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
    "table", "td", "th", "tr", "ul",
})


def html_to_text(markup: str) -> tuple[str, str]:
    """The visible text of ``markup``, its blocks separated by blank lines and the whitespace inside
    each collapsed, and its title: the text of the first <h1>, else of the first <title>, else ""."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    blocks = (" ".join(line.split()) for line in "".join(parser.pieces).split("\n"))
    text = "\n\n".join(block for block in blocks if block)
    runs = parser.h1 if parser.h1 is not None else parser.title or []
    return text, " ".join(" ".join(runs).split())


class _HtmlText(HTMLParser):
    """The events of :class:`html.parser.HTMLParser` turned into text and the title's strings, with no tree.

    Elements left open are closed as BeautifulSoup's html.parser builder (the implementation this
    replaced) closes them: an end tag closes every element opened after the last open one of its
    name; an end tag with none open is ignored; void elements (br, img, ...) close at once. Character
    references are decoded as HTML5 says (:func:`html.unescape`).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []  # the visible text, with "\n" around each block element
        self.h1: list[str] | None = None  # the strings of the first <h1>, once one opens
        self.title: list[str] | None = None  # the strings of the first <title>
        self._open: list[str] = []  # names of the open elements, outermost first
        self._hides: list[bool] = []  # whether each open element hides its text (hidden or boilerplate)
        self._open_count: dict[str, int] = {}
        self._hidden = 0  # open hidden elements: their text is dropped
        self._unspoken = 0  # open script, style, template, rt, rp: their strings are no text at all
        self._capture: list[tuple[int, list[str]]] = []  # (stack depth, strings) of the open h1 and title
        self._closed_void: dict[str, int] = {}  # void elements closed at once, whose end tag may still come
        self._in_string = False  # the last event was text: the next text continues the same string

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._push(tag, attrs)
        if tag in _VOID_HTML:
            self._pop_to(tag)
            self._closed_void[tag] = self._closed_void.get(tag, 0) + 1

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self._push(tag, attrs)
        self._pop_to(tag)

    def _hides_text(self, tag: str, attrs: list) -> bool:
        """Whether ``tag`` (about to open, with ``attrs``) is hidden or page boilerplate (module docstring)."""
        if tag in _HIDDEN_HTML or tag in _ASIDE_HTML:
            return True
        if tag in _PAGE_HTML and not any(self._open_count.get(name) for name in _CONTENT_HTML):
            return True
        for name, value in attrs:
            if name == "hidden" or (name == "role" and (value or "").strip().lower() in _BOILERPLATE_ROLES):
                return True
        return False

    def handle_endtag(self, tag: str) -> None:
        if self._closed_void.get(tag):
            self._closed_void[tag] -= 1
        else:
            self._pop_to(tag)

    def handle_data(self, data: str) -> None:
        if not self._unspoken:
            self._text(data)

    def unknown_decl(self, data: str) -> None:
        self._in_string = False
        if data.upper().startswith("CDATA["):  # a CDATA section is a string of its own, text everywhere
            self._text(data[len("CDATA["):])
            self._in_string = False

    def _text(self, data: str) -> None:
        if not self._hidden:
            self.pieces.append(data)
        for _, strings in self._capture:
            if self._in_string:
                strings[-1] += data
            else:
                strings.append(data)
        self._in_string = True

    def handle_comment(self, data: str) -> None:
        self._in_string = False

    def handle_pi(self, data: str) -> None:
        self._in_string = False

    def handle_decl(self, decl: str) -> None:
        self._in_string = False

    def _push(self, tag: str, attrs: list = ()) -> None:
        self._in_string = False
        hides = self._hides_text(tag, attrs)
        if tag in _BLOCK_HTML and not self._hidden and not hides:  # a dropped element leaves no break
            self.pieces.append("\n")
        self._open.append(tag)
        self._hides.append(hides)
        self._open_count[tag] = self._open_count.get(tag, 0) + 1
        self._hidden += hides
        self._unspoken += tag in _UNSPOKEN_HTML
        if tag == "h1" and self.h1 is None:
            self.h1 = []
            self._capture.append((len(self._open), self.h1))
        elif tag == "title" and self.title is None:
            self.title = []
            self._capture.append((len(self._open), self.title))

    def _pop_to(self, tag: str) -> None:
        self._in_string = False
        if not self._open_count.get(tag):
            return
        while True:
            name = self._open.pop()
            self._open_count[name] -= 1
            hid = self._hides.pop()
            self._hidden -= hid
            self._unspoken -= name in _UNSPOKEN_HTML
            if name in _BLOCK_HTML and not self._hidden and not hid:
                self.pieces.append("\n")
            while self._capture and self._capture[-1][0] > len(self._open):
                self._capture.pop()
            if name == tag:
                return
