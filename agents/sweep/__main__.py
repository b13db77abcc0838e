from agents.sweep.run import main

main()
