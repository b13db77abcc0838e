from agents.reproduce.run import main
from models.cli import run_cli

run_cli(main, prog="python -m agents.reproduce")
