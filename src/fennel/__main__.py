from fennel.cli import main

main()
