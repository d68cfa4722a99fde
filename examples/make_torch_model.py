#!/usr/bin/python3
"""make_torch_model.py OUT.pth: saves the state dict of a small PyTorch
network (a conv, a batch norm, a linear layer) with torch.save, as a
PyTorch training script would.  Needs Debian's python3-torch."""

import sys

import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 6, 5)
        self.bn = torch.nn.BatchNorm2d(6)
        self.fc = torch.nn.Linear(6 * 24 * 24, 10)


def main(argv):
    torch.manual_seed(1)
    net = Net()
    with torch.no_grad():  # as after training: running statistics set
        net.bn.running_mean.uniform_(-0.1, 0.1)
        net.bn.running_var.uniform_(0.9, 1.1)
        net.bn.num_batches_tracked.fill_(100)
    torch.save(net.state_dict(), argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
