import sys

from wmfm.cli import main

sys.exit(main())
