import sys

from asterisk.pbx_simulator.cli import main

sys.exit(main())
