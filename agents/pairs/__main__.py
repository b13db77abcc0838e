from agents.pairs.trainer import main

main()
