"""The translation catalogs: extract marked texts, merge them into the .po files, check them.

    python scripts/i18n.py update   # extract (Babel) and merge into hub/i18n/locale/{vi,en}/LC_MESSAGES/*.po
    python scripts/i18n.py check    # exit 1 listing every text without a Vietnamese translation

Texts are marked with ``_``, ``N_``, ``tr``, ``gettext_`` and ``ngettext`` (see hub/i18n). Jinja2 templates
(``*.html``, ``*.j2``) under a domain's paths are extracted with ``{% trans %}`` and ``_()``. After
``update``, translate the new Vietnamese entries (empty ``msgstr``) in the ``vi`` catalogs; English
entries may stay empty (the English text in the code is used).
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.i18n import DOMAINS, LANGUAGES, LOCALE_DIR  # noqa: E402

KEYWORDS: dict[str, Any] = {"_": None, "N_": None, "tr": None, "gettext_": None, "gettext": None,
                            "ngettext": (1, 2)}
TEMPLATE_SUFFIXES = (".html", ".j2", ".jinja")
PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)[^{}]*\}")


def sources(domain: str) -> Iterator[Path]:
    for entry in DOMAINS[domain]:
        path = ROOT / entry
        if path.is_file():
            yield path
        elif path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.suffix == ".py" or p.suffix in TEMPLATE_SUFFIXES:
                    yield p


def extract(domain: str) -> Catalog:
    template = Catalog(project="anninh-hub", domain=domain)
    for path in sources(domain):
        method: Any = "python" if path.suffix == ".py" else "jinja2.ext:babel_extract"
        options = {} if path.suffix == ".py" else {"extensions": "jinja2.ext.i18n", "trimmed": "true"}
        for lineno, message, comments, context in extract_from_file(method, str(path), KEYWORDS,
                                                                   options=options, strip_comment_tags=True):
            template.add(message, None, [(str(path.relative_to(ROOT)), lineno)], auto_comments=comments,
                         context=context)
    return template


def po_path(lang: str, domain: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"


def read(lang: str, domain: str) -> Catalog:
    path = po_path(lang, domain)
    if not path.exists():
        return Catalog(locale=lang, project="anninh-hub", domain=domain)
    with path.open("rb") as f:
        return read_po(f, locale=lang, domain=domain)


def update() -> None:
    for domain in DOMAINS:
        template = extract(domain)
        for lang in LANGUAGES:
            catalog = read(lang, domain)
            if not len(template) and not len(catalog):
                continue
            catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
            catalog.obsolete.clear()  # texts no longer in the code: dropped, git keeps them
            path = po_path(lang, domain)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                write_po(f, catalog, width=110, sort_output=False, omit_header=False, include_previous=False,
                          include_lineno=False)
            print(f"{path.relative_to(ROOT)}: {len(catalog)} texts")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def problems() -> list[str]:
    """Every text marked in the code that a person would read untranslated, or translated wrongly."""
    found: list[str] = []
    for domain in DOMAINS:
        template = extract(domain)
        catalogs = {lang: read(lang, domain) for lang in LANGUAGES}
        for message in template:
            if not message.id:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            where = ", ".join(f"{p}:{n}" for p, n in message.locations[:2])
            for lang, catalog in catalogs.items():
                entry = catalog.get(message.id)
                if entry is None:
                    found.append(f"{domain}/{lang}: not in the catalog: {ids[0]!r} ({where})")
                    continue
                strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
                if lang == "vi" and not all(strings):
                    found.append(f"{domain}/vi: no Vietnamese translation: {ids[0]!r} ({where})")
                    continue
                if entry.fuzzy:
                    found.append(f"{domain}/{lang}: fuzzy (needs review): {ids[0]!r}")
                for s in strings:
                    if s and placeholders(str(s)) != placeholders(str(ids[0])):
                        found.append(f"{domain}/{lang}: placeholders differ in {s!r} for {ids[0]!r}")
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"]:
        update()
        return 0
    if argv[:1] == ["check"]:
        found = problems()
        for line in found:
            print(line)
        print(f"{len(found)} problem(s)" if found else "catalogs complete")
        return 1 if found else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
