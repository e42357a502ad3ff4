"""Start the document question-answering chat app: ``python app.py`` (options: ``python app.py --help``)."""

import sys

from qa.app.ui import main

if __name__ == "__main__":
    sys.exit(main())
