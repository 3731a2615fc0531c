"""``python -m search_lab.bench`` (the code: ``benchmarks.speed``)."""

from search_lab.benchmarks.speed import main

if __name__ == "__main__":
    main()
