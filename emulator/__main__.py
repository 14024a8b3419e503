import sys

from emulator.tools._cli import main

sys.exit(main())
