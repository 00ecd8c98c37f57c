# Every pillar error with its path, in one place. App states fail on their own
# errors too, so valid apps still converge when one entry is wrong.
workstation-pillar-validated:
  workstation.validated: []
