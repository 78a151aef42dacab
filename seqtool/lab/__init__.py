"""The lab: small, readable experiments from the course this tool grew from.

binary_addition.py  an RNN in plain NumPy that learns 8-bit addition (BPTT written out)
curves.py           the outcome of a training run, read from its loss curve
cells.py            RNN, LSTM, peephole LSTM and GRU side by side (torch)
"""
