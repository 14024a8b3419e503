import sys

from emulator._cli import main

sys.exit(main())
