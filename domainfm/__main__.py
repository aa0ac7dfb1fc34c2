from domainfm.cli import main

main()
