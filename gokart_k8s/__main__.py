"""``python -m gokart_k8s`` is the ``gokart-k8s`` command (pods use it when no script is on PATH)."""

from gokart_k8s.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
