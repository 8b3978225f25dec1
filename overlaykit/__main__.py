from overlaykit.cli.main import main

main()
