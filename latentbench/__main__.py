"""``python -m latentbench`` (also: ``accelerate launch -m latentbench ...``)."""

from latentbench.cli import main

main()
