"""Start the document question-answering chat app: ``python app.py`` (options: ``python app.py --help``)."""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(command="serve", prog="app.py"))
