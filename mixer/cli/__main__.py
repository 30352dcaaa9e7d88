"""`python -m mixer.cli ...`: the `mixer` command, for launchers that run a module
(`torchrun --nproc-per-node 8 -m mixer.cli train ...`)."""
from mixer.cli.main import main

if __name__ == "__main__":
    main()
