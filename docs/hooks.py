"""MkDocs hook: the files of the repository that the pages link to outside docs/.

The pages link to the repository as it is on disk (``../examples/robustness/README.md``),
so the links work on GitHub and in a checkout. This hook copies each such target into
the built site under ``repository/`` and resolves the links to it, so that
``mkdocs build --strict`` can check them like any other link instead of warning.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

# A Markdown link or image target: ](target) or ](target "title").
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?(?:\s+\"[^\"]*\")?\)")


class RepositoryFile(File):
    """A file of the repository outside docs/, copied as it is (a Markdown file too, not rendered)."""

    def is_documentation_page(self) -> bool:
        return False


def on_files(files: Files, config) -> Files:
    docs = Path(config.docs_dir).resolve()
    repository = docs.parent
    for page in [file for file in files if file.is_documentation_page()]:
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        for target in LINK.findall(text):
            if "://" in target or target.startswith(("/", "mailto:")):
                continue
            uri = posixpath.normpath(posixpath.join(posixpath.dirname(page.src_uri), target))
            if not uri.startswith("../") or files.get_file_from_path(uri) is not None:
                continue
            source = (docs / uri).resolve()
            if repository not in source.parents or not source.is_file():
                continue  # left to mkdocs, which reports the link as broken
            file = RepositoryFile(
                uri,
                src_dir=None,
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
                dest_uri=f"repository/{source.relative_to(repository).as_posix()}",
                inclusion=InclusionLevel.INCLUDED,
            )
            file.abs_src_path = str(source)
            files.append(file)
    return files
