import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.build_vocab import main
if __name__ == "__main__":
    main()
