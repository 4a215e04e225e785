from hookwise.cli import main

main()
