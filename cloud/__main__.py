"""`python -m cloud`: the cloud process (the same as `freshmesh cloud`)."""
import sys

from cloud.main import main

sys.exit(main())
