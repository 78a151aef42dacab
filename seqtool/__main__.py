from seqtool.cli import main

main()
