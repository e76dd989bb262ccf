from agentfleet.frontends.cli import main

main()
