"""``python -m search_lab.bench_ann`` (the code: ``benchmarks.ann``)."""

from search_lab.benchmarks.ann import main

if __name__ == "__main__":
    main()
