from sift_gateway.app import main

main()
