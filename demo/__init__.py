"""The demo: the jaffle-shop dataset generator (`demo.data`) and `make demo` (`python -m demo`)."""
