import sys

from l1stream.cli import main

sys.exit(main())
