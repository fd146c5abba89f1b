"""`python -m robustbench_lip` is the `rlip` command."""

from robustbench_lip.cli.app import main

if __name__ == "__main__":
    main()
