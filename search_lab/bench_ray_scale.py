"""Entry point only: ``python -m search_lab.bench_ray_scale`` runs
``search_lab.benchmarks.ray_scale.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.benchmarks.ray_scale import main

    sys.exit(main())
