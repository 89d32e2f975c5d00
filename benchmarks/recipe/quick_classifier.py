import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

os.makedirs("runs/recipe", exist_ok=True)
from diffusion_lessons.data import load_digits

torch.set_num_threads(1)
torch.manual_seed(0)
x, y = load_digits("mnist-5k", "train")
xt, yt = load_digits("mnist-5k", "test")
net = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(64 * 49, 128),
    nn.ReLU(),
    nn.Dropout(0.3),
    nn.Linear(128, 10),
)
opt = torch.optim.Adam(net.parameters(), 1e-3)
s = time.time()
for ep in range(8):
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 64):
        idx = perm[i : i + 64]
        xb = x[idx]
        sh = torch.randint(-2, 3, (2,))
        xb = torch.roll(xb, shifts=(int(sh[0]), int(sh[1])), dims=(2, 3))
        loss = F.cross_entropy(net(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    acc = (net(xt).argmax(1) == yt).float().mean().item()
    net.train()
    print(ep, acc, time.time() - s, flush=True)
net.eval()
torch.save(net, "runs/recipe/cls.pt")
