"""`python -m edge`: one store's edge box (the same as `freshmesh edge`)."""
import sys

from edge.main import main

sys.exit(main())
