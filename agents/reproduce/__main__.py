from agents.reproduce.run import main

main()
