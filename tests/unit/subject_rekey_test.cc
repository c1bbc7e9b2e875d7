// Re-keying a subject (containment after a leak, SubjectVault::Rekey): every box sealed under
// the old data key — fields, purchase amounts, a request's notes and access package, a
// merge's changed values — opens under the new key to what it held before, none opens under
// the old key any more, and what reads them (the record, the package, a merge's revert)
// works as before. Erased subjects and unknown ids are counted, not changed.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "deployment_fixture.h"
#include "garde/crypto/envelope.h"
#include "garde/domain/subject_merges.h"
#include "garde/domain/subject_requests.h"

namespace garde {
namespace {

class SubjectRekeyTest : public DeploymentFixture {
 protected:
  std::string Create(const FieldMap& fields) {
    auto s = d_->vault().Create(operator_, {"person", "web_form", std::nullopt, fields});
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? s->id : "";
  }

  SubjectRow Row(const std::string& id) {
    std::optional<SubjectRow> row;
    EXPECT_TRUE(d_->store()
                    .Read([&](ReadTx& tx) -> Status {
                      auto r = tx.GetSubject(id);
                      if (!r.ok()) return r.status();
                      row = r.value();
                      return Status::Ok();
                    })
                    .ok());
    return row.value_or(SubjectRow{});
  }

  // Every box sealed under the subject's data key, by what it is sealed for.
  std::map<std::string, Bytes> Boxes(const std::string& id) {
    std::map<std::string, Bytes> out;
    EXPECT_TRUE(
        d_->store()
            .Read([&](ReadTx& tx) -> Status {
              auto fields = tx.GetFields(id);
              if (!fields.ok()) return fields.status();
              for (const auto& f : fields.value()) out[f.field] = f.box;
              auto interactions = tx.InteractionsOf(id, 0);
              if (!interactions.ok()) return interactions.status();
              for (const auto& i : interactions.value()) {
                if (!i.sealed_amount.empty()) {
                  out["~" + std::string(kInteractionAmountLabel) + "#" + std::to_string(i.seq)] =
                      i.sealed_amount;
                }
              }
              RequestQuery q;
              q.subject = id;
              auto requests = tx.QueryRequests(q);
              if (!requests.ok()) return requests.status();
              for (const auto& listed : requests.value()) {
                auto r = tx.GetRequest(listed.id);
                if (!r.ok()) return r.status();
                if (!r.value()->sealed.empty()) {
                  out["~" + RequestNotesLabel(listed.id)] = r.value()->sealed;
                }
                if (!r.value()->package.empty()) {
                  out["~" + RequestPackageLabel(listed.id)] = r.value()->package;
                }
              }
              auto merges = tx.MergesInto(id);
              if (!merges.ok()) return merges.status();
              for (const auto& m : merges.value()) {
                if (!m.sealed.empty()) out["~" + MergeValuesLabel(m.id)] = m.sealed;
              }
              return Status::Ok();
            })
            .ok());
    return out;
  }

  // What `box` (sealed for `bound`) holds under `row`'s data key, or nothing.
  std::optional<std::string> Open(const SubjectRow& row, const std::string& bound,
                                  const Bytes& box) {
    ScopedKey dek;
    auto ring = d_->keys().Current();
    if (!UnwrapDataKey(*ring, row.root_key_version, row.id, row.wrapped_dek, &dek).ok()) {
      return std::nullopt;
    }
    const std::string label = bound.substr(0, bound.find('#'));
    auto plain = OpenField(dek, {row.id, label, row.dek_version}, box);
    if (!plain.ok()) return std::nullopt;
    return plain.value();
  }

  static std::map<std::string, std::string> Encoded(const FieldMap& fields) {
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : fields) out[name] = EncodeFieldValue(value);
    return out;
  }

  Caller operator_{"key_op", "operator", {"customer_management"}, "req_t", ""};
  Caller officer_{"key_dpo", "officer", {}, "req_t", ""};
};

TEST_F(SubjectRekeyTest, EveryBoxOpensUnderTheNewKeyAndNoneUnderTheOld) {
  const std::string a = Create({{"email", FieldValue::String("ana@example.org")},
                                {"first_name", FieldValue::String("Ana")},
                                {"phone", FieldValue::String("+33612345678")}});
  const std::string b = Create({{"email", FieldValue::String("ana.other@example.org")},
                                {"first_name", FieldValue::String("Anna")},
                                {"city", FieldValue::String("Lyon")}});
  ASSERT_TRUE(d_->vault()
                  .RecordInteractions(operator_, a,
                                      {{"purchase", d_->clock().Now() - 60, 42.5},
                                       {"visit", d_->clock().Now() - 30, {}}})
                  .ok());
  ASSERT_TRUE(d_->vault()
                  .RecordInteractions(operator_, b, {{"purchase", d_->clock().Now() - 90, 17.25}})
                  .ok());
  NewRequest access;
  access.type = "access";
  access.subject = a;
  access.note = "asked by phone from +33612345678";
  auto request = d_->requests().Open(officer_, access);
  ASSERT_TRUE(request.ok()) << request.status().message();
  ASSERT_TRUE(d_->requests().Verify(officer_, request->row.id, "checked").ok());
  ASSERT_TRUE(d_->requests().Complete(officer_, request->row.id, "").ok());
  auto package = d_->requests().Package(officer_, request->row.id);
  ASSERT_TRUE(package.ok()) << package.status().message();
  auto merged = d_->merges().Merge(operator_, b, {a, {{"first_name", "merged"}}});
  ASSERT_TRUE(merged.ok()) << merged.status().message();
  auto record = d_->vault().Read(operator_, a, "customer_management");
  ASSERT_TRUE(record.ok());

  const SubjectRow before = Row(a);
  const auto old_boxes = Boxes(a);
  std::map<std::string, std::string> plain;
  for (const auto& [bound, box] : old_boxes) {
    auto p = Open(before, bound, box);
    ASSERT_TRUE(p.has_value()) << bound;
    plain[bound] = *p;
  }
  // Fields, two amounts (a's own and the one the merge brought), notes, package, merge.
  ASSERT_GE(old_boxes.size(), 9u);

  auto done = d_->vault().Rekey(officer_, {a, "sub_unknown"});
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(done->rekeyed, 1);
  EXPECT_EQ(done->unknown, 1);

  const SubjectRow after = Row(a);
  EXPECT_EQ(after.dek_version, before.dek_version + 1);
  EXPECT_NE(after.wrapped_dek, before.wrapped_dek);
  const auto new_boxes = Boxes(a);
  ASSERT_EQ(new_boxes.size(), old_boxes.size());
  for (const auto& [bound, box] : new_boxes) {
    ASSERT_EQ(old_boxes.count(bound), 1u) << bound;
    EXPECT_NE(box, old_boxes.at(bound)) << bound;
    EXPECT_EQ(Open(after, bound, box), plain[bound]) << bound;
    // The old key opens nothing the vault holds now, under either version's binding.
    EXPECT_FALSE(Open(before, bound, box).has_value()) << bound;
    SubjectRow old_key_new_binding = before;
    old_key_new_binding.dek_version = after.dek_version;
    EXPECT_FALSE(Open(old_key_new_binding, bound, box).has_value()) << bound;
  }

  // What reads the boxes reads them as before.
  auto again = d_->vault().Read(operator_, a, "customer_management");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Encoded(again->fields), Encoded(record->fields));
  auto view = d_->requests().Get(officer_, request->row.id);
  ASSERT_TRUE(view.ok()) << view.status().message();
  EXPECT_EQ(view->note, access.note);
  auto package_again = d_->requests().Package(officer_, request->row.id);
  ASSERT_TRUE(package_again.ok()) << package_again.status().message();
  EXPECT_EQ(package_again.value(), package.value());
  // The merge's values are read back by its revert: both records as before the merge.
  ASSERT_TRUE(d_->merges().Revert(officer_, merged->id).ok());
  auto reverted = d_->vault().Read(operator_, a, "customer_management");
  ASSERT_TRUE(reverted.ok()) << reverted.status().message();
  EXPECT_EQ(reverted->fields.at("first_name").text, "Ana");
  EXPECT_EQ(reverted->fields.count("city"), 0u);
}

TEST_F(SubjectRekeyTest, ErasedSubjectsAreCountedAndASecondRekeyMovesOn) {
  const std::string a = Create({{"email", FieldValue::String("a@example.org")}});
  const std::string gone = Create({{"email", FieldValue::String("gone@example.org")}});
  NewRequest erasure;
  erasure.type = "erasure";
  erasure.subject = gone;
  auto request = d_->requests().Open(officer_, erasure);
  ASSERT_TRUE(request.ok()) << request.status().message();
  ASSERT_TRUE(d_->requests().Verify(officer_, request->row.id, "checked").ok());
  ASSERT_TRUE(d_->requests().Complete(officer_, request->row.id, "").ok());
  ASSERT_TRUE(Row(gone).wrapped_dek.empty());

  auto first = d_->vault().Rekey(officer_, {a, gone});
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->rekeyed, 1);
  EXPECT_EQ(first->erased, 1);
  const SubjectRow once = Row(a);
  auto second = d_->vault().Rekey(officer_, {a});
  ASSERT_TRUE(second.ok()) << second.status().message();
  const SubjectRow twice = Row(a);
  EXPECT_EQ(twice.dek_version, once.dek_version + 1);
  EXPECT_NE(twice.wrapped_dek, once.wrapped_dek);
  auto read = d_->vault().Read(operator_, a, "customer_management");
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->fields.at("email").text, "a@example.org");
}

}  // namespace
}  // namespace garde
