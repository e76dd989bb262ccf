from agentfleet.main import main

main()
