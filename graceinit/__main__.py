from graceinit.boot import main

main()
