"""``python -m search_lab.bench_integrity`` (the code: ``benchmarks.integrity``)."""

from search_lab.benchmarks.integrity import main

if __name__ == "__main__":
    main()
