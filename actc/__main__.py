import sys

from actc.cli.main import main

sys.exit(main())
