import sys

from tomsip.cli import main

sys.exit(main())
