"""`python -m mixer ...`: the `mixer` command (`torchrun --nproc-per-node 8 -m mixer train ...`)."""
from mixer.cli.main import main

if __name__ == "__main__":
    main()
