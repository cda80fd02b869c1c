from kvha.cli import main

main()
