"""`python -m wmfm.xapp --config deploy/descriptor/config-file.json [--set key=value ...]`."""

import sys

from wmfm.cli import main

if __name__ == "__main__":
    sys.exit(main(["xapp", *sys.argv[1:]]))
