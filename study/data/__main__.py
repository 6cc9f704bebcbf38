"""``python -m study.data``: find, check (and if need be fetch) a data set's files."""

import sys

from study.data.loading import main

if __name__ == "__main__":
    sys.exit(main())
