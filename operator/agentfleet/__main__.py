from agentfleet.cli import main

main()
