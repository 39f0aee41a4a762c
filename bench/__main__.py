"""`python -m bench`: the end-to-end benchmark (see bench/run.py), optionally against Postfix + OpenDKIM."""

from bench.run import main

main()
